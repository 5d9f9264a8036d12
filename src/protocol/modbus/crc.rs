//! CRC-16/MODBUS: polynomial 0x8005 reflected (0xA001), initial value 0xFFFF,
//! no final XOR; sent low byte first. Check value over "123456789": 0x4B37
//! (the CRC catalogue's CRC-16/MODBUS entry).

const POLY_REFLECTED: u16 = 0xA001;

const TABLE: [u16; 256] = build_table();

// Indexing in a const fn over 0..256 into a [_; 256]: checked at compile time.
#[allow(clippy::indexing_slicing)]
const fn build_table() -> [u16; 256] {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u16;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 != 0 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
}

/// CRC-16/MODBUS of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    let mut crc: u16 = 0xFFFF;
    for &byte in bytes {
        let index = usize::from((crc ^ u16::from(byte)) & 0xFF);
        // The table has 256 entries and index is masked to 0..=255.
        let entry = TABLE.get(index).copied().unwrap_or(0);
        crc = (crc >> 8) ^ entry;
    }
    crc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_of_the_crc_catalogue() {
        assert_eq!(crc16(b"123456789"), 0x4B37);
    }

    #[test]
    fn spec_example_read_holding_registers() {
        // Modbus over Serial Line V1.02, 6.2.2 style: 01 03 00 00 00 0A -> C5 CD.
        assert_eq!(
            crc16(&[0x01, 0x03, 0x00, 0x00, 0x00, 0x0A]).to_le_bytes(),
            [0xC5, 0xCD]
        );
    }
}
