//! What the configuration reads besides its own text: tag CSV files, password
//! files, OPC UA certificates, keys and trust directories, and environment
//! variables. Behind a trait so that `parse_str` (and
//! the fuzz target) never touch the file system or the environment.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

pub trait Sources {
    fn read_file(&self, path: &Path) -> io::Result<String>;
    fn env_var(&self, name: &str) -> Option<String>;
    /// A file that need not be text (a DER certificate), under the same cap.
    fn read_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        self.read_file(path).map(String::into_bytes)
    }
    /// Whether `path` is a directory (a trust list).
    fn is_dir(&self, path: &Path) -> bool;
}

/// The most bytes read from the configuration file or a file it names: a tag
/// CSV of `TAGS_MAX` (1 Mi) tags at up to 256 bytes a line. Memory the file
/// decides: a path naming `/dev/zero` or a log by mistake stops here.
pub const CONFIG_FILE_BYTES_MAX: u64 = 256 << 20;

/// The real file system and process environment.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemSources;

impl Sources for SystemSources {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        crate::files::read_text_capped(path, CONFIG_FILE_BYTES_MAX)
    }
    fn env_var(&self, name: &str) -> Option<String> {
        std::env::var(name).ok()
    }
    fn read_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        crate::files::read_capped(path, CONFIG_FILE_BYTES_MAX)
    }
    fn is_dir(&self, path: &Path) -> bool {
        path.is_dir()
    }
}

/// Files and variables held in memory (tests, fuzzing). Empty by default:
/// every file is missing and every variable unset.
#[derive(Clone, Debug, Default)]
pub struct MemorySources {
    pub files: HashMap<PathBuf, String>,
    /// Files that are not text (DER certificates).
    pub binary: HashMap<PathBuf, Vec<u8>>,
    pub dirs: HashSet<PathBuf>,
    pub env: HashMap<String, String>,
}

impl Sources for MemorySources {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }
    fn env_var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn read_bytes(&self, path: &Path) -> io::Result<Vec<u8>> {
        match self.binary.get(path) {
            Some(bytes) => Ok(bytes.clone()),
            None => self.read_file(path).map(String::into_bytes),
        }
    }
    fn is_dir(&self, path: &Path) -> bool {
        self.dirs.contains(path)
    }
}
