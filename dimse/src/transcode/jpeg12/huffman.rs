//! Huffman tables (DHT) and the bit reader over one entropy-coded segment: byte
//! stuffing (FF 00), a marker ends the segment, restart markers are checked by the
//! caller. Every read is bounds-checked: running out of data is an error, never a
//! padding with zeros.

use super::JpegError;

/// One Huffman table in the form of ITU T.81 Annex F.2.2.3 (MAXCODE, VALPTR).
#[derive(Debug, Clone)]
pub(super) struct HuffmanTable {
    /// Largest code of each length 1..=16 (index 0 unused), -1 when none.
    max_code: [i32; 17],
    /// `values` index of the first code of each length minus that code.
    offset: [i32; 17],
    values: Vec<u8>,
}

impl HuffmanTable {
    /// Builds a table from the 16 code counts and the symbols, in DHT order.
    pub(super) fn new(counts: &[u8; 16], values: &[u8]) -> Result<Self, JpegError> {
        let total: usize = counts.iter().map(|c| usize::from(*c)).sum();
        if total != values.len() || total > 256 {
            return Err(JpegError::malformed(
                "Huffman table counts and symbols disagree",
            ));
        }
        let mut max_code = [-1_i32; 17];
        let mut offset = [0_i32; 17];
        let mut code: i32 = 0;
        let mut index: i32 = 0;
        for len in 1..=16 {
            let n = i32::from(counts[len - 1]);
            if n > 0 {
                offset[len] = index - code;
                code += n;
                index += n;
                max_code[len] = code - 1;
                if code > (1 << len) {
                    return Err(JpegError::malformed("Huffman table has too many codes"));
                }
            }
            code <<= 1;
        }
        Ok(Self {
            max_code,
            offset,
            values: values.to_vec(),
        })
    }
}

/// Reads bits, most significant first, from an entropy-coded segment.
pub(super) struct BitReader<'a> {
    data: &'a [u8],
    pos: usize,
    acc: u32,
    bits: u32,
}

impl<'a> BitReader<'a> {
    /// A reader over `data` starting at `pos` (just after the SOS header).
    pub(super) fn new(data: &'a [u8], pos: usize) -> Self {
        Self {
            data,
            pos,
            acc: 0,
            bits: 0,
        }
    }

    /// The position of the first byte not yet taken into the bit buffer.
    pub(super) fn position(&self) -> usize {
        self.pos
    }

    /// Takes whole data bytes into the buffer until it holds more than 24 bits or
    /// a marker (or the end of the data) is reached.
    fn fill(&mut self) {
        while self.bits <= 24 {
            let Some(&byte) = self.data.get(self.pos) else {
                return;
            };
            if byte == 0xFF {
                if self.data.get(self.pos + 1) != Some(&0) {
                    return;
                }
                self.pos += 2;
            } else {
                self.pos += 1;
            }
            self.acc = (self.acc << 8) | u32::from(byte);
            self.bits += 8;
        }
    }

    fn bit(&mut self) -> Result<u32, JpegError> {
        if self.bits == 0 {
            self.fill();
            if self.bits == 0 {
                return Err(self.truncated());
            }
        }
        self.bits -= 1;
        Ok((self.acc >> self.bits) & 1)
    }

    /// `n` (0..=16) bits as an unsigned number.
    pub(super) fn bits(&mut self, n: u32) -> Result<u32, JpegError> {
        if self.bits < n {
            self.fill();
            if self.bits < n {
                return Err(self.truncated());
            }
        }
        self.bits -= n;
        Ok((self.acc >> self.bits) & ((1_u32 << n) - 1))
    }

    fn truncated(&self) -> JpegError {
        if self.pos >= self.data.len() {
            JpegError::malformed("the stream ends inside entropy-coded data (truncated)")
        } else {
            JpegError::malformed(format!(
                "entropy-coded data ends early at a marker (byte offset {})",
                self.pos
            ))
        }
    }

    /// The next Huffman-coded symbol.
    pub(super) fn symbol(&mut self, table: &HuffmanTable) -> Result<u8, JpegError> {
        let mut code = self.bit()? as i32;
        for len in 1..=16 {
            if code <= table.max_code[len] {
                let index = usize::try_from(code + table.offset[len])
                    .map_err(|_| JpegError::malformed("bad Huffman code"))?;
                return table
                    .values
                    .get(index)
                    .copied()
                    .ok_or_else(|| JpegError::malformed("bad Huffman code"));
            }
            code = (code << 1) | self.bit()? as i32;
        }
        Err(JpegError::malformed("Huffman code not in the table"))
    }

    /// A coefficient of magnitude category `size` (T.81 F.2.2.1 RECEIVE, EXTEND).
    pub(super) fn extend(&mut self, size: u8) -> Result<i32, JpegError> {
        if size == 0 {
            return Ok(0);
        }
        if size > 16 {
            return Err(JpegError::malformed("coefficient size category above 16"));
        }
        let size = u32::from(size);
        let v = self.bits(size)? as i32;
        Ok(if v < (1 << (size - 1)) {
            v - (1 << size) + 1
        } else {
            v
        })
    }

    /// At a restart interval's end: drops the padding bits and reads the marker
    /// RSTn, which must be `expected` (0..=7).
    pub(super) fn restart(&mut self, expected: u8) -> Result<(), JpegError> {
        self.acc = 0;
        self.bits = 0;
        while self.data.get(self.pos) == Some(&0xFF) && self.data.get(self.pos + 1) == Some(&0xFF) {
            self.pos += 1;
        }
        match self.data.get(self.pos..self.pos + 2) {
            Some(&[0xFF, m]) if m == 0xD0 + expected => {
                self.pos += 2;
                Ok(())
            }
            Some(&[0xFF, m]) if (0xD0..=0xD7).contains(&m) => Err(JpegError::malformed(format!(
                "restart marker RST{} where RST{expected} was expected",
                m - 0xD0
            ))),
            None | Some(_) => Err(JpegError::malformed(format!(
                "missing restart marker RST{expected} at byte offset {}",
                self.pos
            ))),
        }
    }
}
