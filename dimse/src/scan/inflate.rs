//! Raw DEFLATE decoding that reports a stream cut short as truncation.

use std::io::{self, BufRead, Read};

use flate2::{Decompress, FlushDecompress, Status};

/// Raw deflate that, unlike `flate2::read::DeflateDecoder`, reports input ending
/// before the final block as `UnexpectedEof` and leaves what follows it unread.
pub(super) struct Inflate<R> {
    input: R,
    state: Decompress,
    finished: bool,
}

impl<R: BufRead> Inflate<R> {
    pub(super) fn new(input: R) -> Self {
        Inflate {
            input,
            state: Decompress::new(false),
            finished: false,
        }
    }

    /// Up to two bytes of input after the end of the deflate stream.
    pub(super) fn trailing(&mut self) -> io::Result<Vec<u8>> {
        let mut rest = Vec::with_capacity(2);
        self.input.by_ref().take(2).read_to_end(&mut rest)?;
        Ok(rest)
    }
}

impl<R: BufRead> Read for Inflate<R> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while !self.finished && !out.is_empty() {
            let input = self.input.fill_buf()?;
            let at_eof = input.is_empty();
            let (before_in, before_out) = (self.state.total_in(), self.state.total_out());
            let status = self
                .state
                .decompress(input, out, FlushDecompress::None)
                .map_err(|error| io::Error::new(io::ErrorKind::InvalidData, error))?;
            let consumed = (self.state.total_in() - before_in) as usize;
            let produced = (self.state.total_out() - before_out) as usize;
            self.input.consume(consumed);
            self.finished = status == Status::StreamEnd;
            if produced > 0 {
                return Ok(produced);
            }
            if at_eof {
                let message = "the deflate stream ends before its final block";
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, message));
            }
            if consumed == 0 {
                let message = "the deflate stream makes no progress";
                return Err(io::Error::new(io::ErrorKind::InvalidData, message));
            }
        }
        Ok(0)
    }
}
