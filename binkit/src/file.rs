//! A file read whole, but never more than a bound: a user's job file, a metadata file another
//! process wrote. A file past the bound is refused having read only one byte more than it (a
//! sparse file of terabytes costs nothing), and a directory is said to be one.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// Why [`read_at_most`] read nothing.
#[derive(Debug)]
pub enum ReadError {
    /// Opening or reading failed; a missing file is `ErrorKind::NotFound`.
    Io(std::io::Error),
    /// The path is a directory.
    Directory,
    /// The file holds more than the bound.
    TooLarge {
        /// The bound, bytes.
        max: u64,
    },
}

impl fmt::Display for ReadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Io(e) => e.fmt(f),
            Self::Directory => f.write_str("a directory, not a file"),
            Self::TooLarge { max } => write!(f, "larger than {max} bytes; not read"),
        }
    }
}

impl std::error::Error for ReadError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            Self::Io(e) => Some(e),
            _ => None,
        }
    }
}

/// The bytes of the file at `path`, at most `max` of them.
///
/// # Errors
/// [`ReadError`]: the file cannot be opened or read, is a directory, or holds more than `max`
/// bytes.
pub fn read_at_most(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    let file = std::fs::File::open(path).map_err(ReadError::Io)?;
    if file.metadata().map_err(ReadError::Io)?.is_dir() {
        return Err(ReadError::Directory);
    }
    let mut bytes = Vec::new();
    file.take(max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(ReadError::Io)?;
    if bytes.len() as u64 > max {
        return Err(ReadError::TooLarge { max });
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_up_to_the_bound_and_refuses_past_it() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"12345").unwrap();
        assert_eq!(read_at_most(&path, 5).unwrap(), b"12345");
        let e = read_at_most(&path, 4).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { max: 4 }), "{e:?}");
        assert_eq!(e.to_string(), "larger than 4 bytes; not read");
        // Sparse: a terabyte costs nothing, only max + 1 bytes are read.
        std::fs::File::create(&path)
            .unwrap()
            .set_len(1 << 40)
            .unwrap();
        assert!(matches!(
            read_at_most(&path, 1024),
            Err(ReadError::TooLarge { max: 1024 })
        ));
    }

    #[test]
    fn a_directory_and_a_missing_file_are_told_apart() {
        let dir = tempfile::tempdir().unwrap();
        assert!(matches!(
            read_at_most(dir.path(), 10),
            Err(ReadError::Directory)
        ));
        match read_at_most(&dir.path().join("none"), 10) {
            Err(ReadError::Io(e)) => assert_eq!(e.kind(), std::io::ErrorKind::NotFound),
            other => panic!("{other:?}"),
        }
    }
}
