//! Reading a whole file whose size someone else decides (the configuration,
//! its tag CSVs and password files, TLS PEM files, the stand-in's users
//! file, the WAL's tag tables) under a cap: a path that names `/dev/zero`,
//! a FIFO that never ends or a log file by mistake costs at most about twice
//! the cap, and the error says so. Must never: read a file whole without a
//! cap.

#![forbid(unsafe_code)]

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

/// The bytes of `path`, at most `bytes_max` of them: a longer file is an
/// `InvalidData` error that names the cap.
pub fn read_capped(path: &Path, bytes_max: u64) -> io::Result<Vec<u8>> {
    let mut bytes = Vec::new();
    File::open(path)?
        .take(bytes_max.saturating_add(1))
        .read_to_end(&mut bytes)?;
    if bytes.len() as u64 > bytes_max {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("larger than {bytes_max} bytes, the most read from such a file"),
        ));
    }
    Ok(bytes)
}

/// `read_capped` as UTF-8 text.
pub fn read_text_capped(path: &Path, bytes_max: u64) -> io::Result<String> {
    String::from_utf8(read_capped(path, bytes_max)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn at_the_cap_is_read_one_more_byte_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, [b'a'; 100]).unwrap();
        assert_eq!(read_text_capped(&path, 100).unwrap().len(), 100);
        let e = read_capped(&path, 99).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidData);
        assert!(e.to_string().contains("larger than 99 bytes"), "{e}");
        std::fs::write(&path, [0xff, 0xfe]).unwrap();
        assert!(read_text_capped(&path, 100).is_err());
    }

    #[test]
    fn an_endless_file_costs_the_cap() {
        let e = read_capped(Path::new("/dev/zero"), 1 << 20).unwrap_err();
        assert!(e.to_string().contains("larger than"), "{e}");
    }
}
