//! TFRecord framing: each record is `u64 length (LE)`, `u32 masked CRC-32C of those 8 bytes`,
//! the data, `u32 masked CRC-32C of the data`. The mask (a rotation plus a constant) keeps a CRC
//! of data that itself contains CRCs from being degenerate.

use std::io::{self, Write};

/// The constant TFRecord adds to a rotated CRC.
const MASK_DELTA: u32 = 0xa282_ead8;

/// TFRecord's masked CRC-32C (Castagnoli) of `bytes`.
pub fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(MASK_DELTA)
}

/// Writes `data` as one record.
pub fn write_record(w: &mut impl Write, data: &[u8]) -> io::Result<()> {
    let len = (data.len() as u64).to_le_bytes();
    w.write_all(&len)?;
    w.write_all(&masked_crc(&len).to_le_bytes())?;
    w.write_all(data)?;
    w.write_all(&masked_crc(data).to_le_bytes())
}

/// The records of a file's bytes, each CRC checked. A record cut short at the end (a writer
/// killed mid-record) ends the list; a record whose CRC does not match is an error (`Err` gives
/// its byte offset and what is wrong).
pub fn read_records(bytes: &[u8]) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < bytes.len() {
        let Some(head) = bytes.get(at..at + 12) else {
            break; // torn header
        };
        let (len, len_crc) = head.split_at(8);
        if masked_crc(len) != u32::from_le_bytes(len_crc.try_into().expect("4 bytes")) {
            return Err(format!("byte {at}: length CRC mismatch"));
        }
        let n = u64::from_le_bytes(len.try_into().expect("8 bytes")) as usize;
        let start = at + 12;
        // Checked twice: a length near 2^64 (with a matching CRC) must not wrap past the end.
        let fits = |e: &usize| e.checked_add(4).is_some_and(|x| x <= bytes.len());
        let Some(end) = start.checked_add(n).filter(fits) else {
            break; // torn data
        };
        let data = &bytes[start..end];
        let crc = u32::from_le_bytes(bytes[end..end + 4].try_into().expect("4 bytes"));
        if masked_crc(data) != crc {
            return Err(format!("byte {at}: data CRC mismatch"));
        }
        out.push(data);
        at = end + 4;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crc32c_and_mask_match_known_values() {
        // CRC-32C check value of "123456789" (RFC 3720).
        assert_eq!(crc32c::crc32c(b"123456789"), 0xe306_9283);
        assert_eq!(masked_crc(b""), MASK_DELTA);
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let mut buf = Vec::new();
        write_record(&mut buf, b"first").unwrap();
        write_record(&mut buf, b"").unwrap();
        write_record(&mut buf, b"third one").unwrap();
        let full = buf.len();
        let recs = read_records(&buf).unwrap();
        assert_eq!(recs, vec![&b"first"[..], b"", b"third one"]);
        for cut in [full - 1, full - 5, full - 13, full - 20] {
            assert_eq!(read_records(&buf[..cut]).unwrap().len(), 2, "cut at {cut}");
        }
        buf[14] ^= 1;
        assert!(read_records(&buf).unwrap_err().contains("data CRC"));
    }
}
