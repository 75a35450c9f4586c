//! Protobuf wire format: varints, tags and the four value encodings, read without copying.

use crate::error::Malformed;

/// Wire types, as numbered on the wire.
pub(crate) const VARINT: u8 = 0;
pub(crate) const FIXED64: u8 = 1;
pub(crate) const LEN: u8 = 2;
pub(crate) const START_GROUP: u8 = 3;
pub(crate) const END_GROUP: u8 = 4;
pub(crate) const FIXED32: u8 = 5;

/// Field numbers are 29 bits.
const MAX_FIELD_NUMBER: u64 = (1 << 29) - 1;

/// Groups are a proto2 relic that no Kubernetes message uses; they are only skipped, but
/// nesting is still bounded so a hostile body cannot recurse without end.
const MAX_GROUP_DEPTH: usize = 64;

/// One field's value as it appears on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireValue<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(&'a [u8]),
    Fixed32(u32),
    /// A skipped group; nothing of it is kept.
    Group,
}

impl WireValue<'_> {
    pub(crate) fn wire_type(&self) -> u8 {
        match self {
            WireValue::Varint(_) => VARINT,
            WireValue::Fixed64(_) => FIXED64,
            WireValue::Len(_) => LEN,
            WireValue::Fixed32(_) => FIXED32,
            WireValue::Group => START_GROUP,
        }
    }
}

/// Reads the fields of one message in wire order.
#[derive(Debug, Clone)]
pub(crate) struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub(crate) fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.pos >= self.buf.len()
    }

    pub(crate) fn varint(&mut self) -> Result<u64, Malformed> {
        let mut value: u64 = 0;
        for i in 0..10 {
            let byte = *self.buf.get(self.pos).ok_or(Malformed::Truncated)?;
            self.pos += 1;
            // The tenth byte may only carry the top bit of a 64-bit value.
            if i == 9 && byte > 1 {
                return Err(Malformed::VarintOverflow);
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(Malformed::VarintOverflow)
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], Malformed> {
        let end = self.pos.checked_add(n).ok_or(Malformed::Truncated)?;
        let bytes = self.buf.get(self.pos..end).ok_or(Malformed::Truncated)?;
        self.pos = end;
        Ok(bytes)
    }

    fn fixed<const N: usize>(&mut self) -> Result<[u8; N], Malformed> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }

    pub(crate) fn fixed32(&mut self) -> Result<u32, Malformed> {
        self.fixed::<4>().map(u32::from_le_bytes)
    }

    pub(crate) fn fixed64(&mut self) -> Result<u64, Malformed> {
        self.fixed::<8>().map(u64::from_le_bytes)
    }

    fn key(&mut self) -> Result<(u32, u8), Malformed> {
        let key = self.varint()?;
        let number = key >> 3;
        if number == 0 || number > MAX_FIELD_NUMBER {
            return Err(Malformed::InvalidFieldNumber(number));
        }
        // Lossless: checked against MAX_FIELD_NUMBER above.
        Ok((number as u32, (key & 7) as u8))
    }

    /// The next field, or `None` at the end of the message.
    pub(crate) fn next_field(&mut self) -> Result<Option<(u32, WireValue<'a>)>, Malformed> {
        if self.is_empty() {
            return Ok(None);
        }
        let (number, wire_type) = self.key()?;
        let value = self.value(number, wire_type, 0)?;
        Ok(Some((number, value)))
    }

    fn value(
        &mut self,
        number: u32,
        wire_type: u8,
        depth: usize,
    ) -> Result<WireValue<'a>, Malformed> {
        Ok(match wire_type {
            VARINT => WireValue::Varint(self.varint()?),
            FIXED64 => WireValue::Fixed64(self.fixed64()?),
            LEN => {
                let len = usize::try_from(self.varint()?).map_err(|_| Malformed::Truncated)?;
                WireValue::Len(self.take(len)?)
            }
            FIXED32 => WireValue::Fixed32(self.fixed32()?),
            START_GROUP => {
                self.skip_group(number, depth)?;
                WireValue::Group
            }
            END_GROUP => return Err(Malformed::UnbalancedGroup),
            other => return Err(Malformed::InvalidWireType(other)),
        })
    }

    fn skip_group(&mut self, number: u32, depth: usize) -> Result<(), Malformed> {
        if depth >= MAX_GROUP_DEPTH {
            return Err(Malformed::TooDeep);
        }
        loop {
            if self.is_empty() {
                return Err(Malformed::Truncated);
            }
            let (inner, wire_type) = self.key()?;
            if wire_type == END_GROUP {
                return if inner == number {
                    Ok(())
                } else {
                    Err(Malformed::UnbalancedGroup)
                };
            }
            self.value(inner, wire_type, depth + 1)?;
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn fields(buf: &[u8]) -> Result<Vec<(u32, WireValue<'_>)>, Malformed> {
        let mut r = Reader::new(buf);
        let mut out = Vec::new();
        while let Some(f) = r.next_field()? {
            out.push(f);
        }
        Ok(out)
    }

    #[test]
    fn varints() {
        assert_eq!(Reader::new(&[0x96, 0x01]).varint(), Ok(150));
        assert_eq!(Reader::new(&[0x00]).varint(), Ok(0));
        let max = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01];
        assert_eq!(Reader::new(&max).varint(), Ok(u64::MAX));
        let over = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert_eq!(Reader::new(&over).varint(), Err(Malformed::VarintOverflow));
        assert_eq!(Reader::new(&[0x80]).varint(), Err(Malformed::Truncated));
        assert_eq!(Reader::new(&[]).varint(), Err(Malformed::Truncated));
    }

    #[test]
    fn all_wire_types() {
        let buf = [
            0x08, 0x96, 0x01, // 1: varint 150
            0x11, 1, 0, 0, 0, 0, 0, 0, 0, // 2: fixed64 1
            0x1a, 0x02, b'h', b'i', // 3: "hi"
            0x25, 2, 0, 0, 0, // 4: fixed32 2
            0x2b, 0x08, 0x01, 0x2c, // 5: group { 1: 1 }
        ];
        assert_eq!(
            fields(&buf),
            Ok(vec![
                (1, WireValue::Varint(150)),
                (2, WireValue::Fixed64(1)),
                (3, WireValue::Len(b"hi")),
                (4, WireValue::Fixed32(2)),
                (5, WireValue::Group),
            ])
        );
    }

    #[test]
    fn malformed() {
        assert_eq!(fields(&[0x00]), Err(Malformed::InvalidFieldNumber(0)));
        assert_eq!(fields(&[0x0e]), Err(Malformed::InvalidWireType(6)));
        assert_eq!(fields(&[0x0c]), Err(Malformed::UnbalancedGroup));
        assert_eq!(fields(&[0x0b, 0x14]), Err(Malformed::UnbalancedGroup));
        assert_eq!(fields(&[0x0b]), Err(Malformed::Truncated));
        assert_eq!(fields(&[0x0a, 0x05, b'a']), Err(Malformed::Truncated));
        assert_eq!(
            fields(&[0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f]),
            Err(Malformed::Truncated)
        );
        assert_eq!(fields(&[0x09, 0x00]), Err(Malformed::Truncated));
        let deep: Vec<u8> = std::iter::repeat_n(0x0b, 100).collect();
        assert_eq!(fields(&deep), Err(Malformed::TooDeep));
        // Field number beyond 29 bits.
        assert!(matches!(
            fields(&[0xf8, 0xff, 0xff, 0xff, 0x7f]),
            Err(Malformed::InvalidFieldNumber(n)) if n > MAX_FIELD_NUMBER
        ));
    }
}
