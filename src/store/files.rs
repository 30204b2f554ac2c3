//! File modes of a data dir: the vault's keys decrypt every account, so nothing in the data
//! dir may be readable by other local users. New files are created 0600 and directories 0700;
//! at start-up wider modes (sled creates its files with the process umask) are narrowed, with
//! a warning naming each path.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

pub const FILE_MODE: u32 = 0o600;
pub const DIR_MODE: u32 = 0o700;

/// Create (or truncate) a file readable by its owner only.
pub fn create_private(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(FILE_MODE)
        .open(path)
}

/// Replace `dir/name` with `bytes` atomically and durably (write a temporary file, fsync it,
/// rename it over, fsync the directory): a crash leaves the old file or the new one.
pub fn replace_durably(dir: &Path, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let tmp = dir.join(format!("{name}.tmp"));
    {
        let mut f = create_private(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
    }
    std::fs::rename(&tmp, dir.join(name))?;
    File::open(dir)?.sync_all()
}

/// Create a directory (and its parents) readable by its owner only.
pub fn create_private_dir(path: &Path) -> std::io::Result<()> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(DIR_MODE)
        .create(path)?;
    // An existing directory keeps its mode: narrow it.
    narrow(path, DIR_MODE).map(|_| ())
}

/// Narrow every file and directory under `root` (and `root` itself) to owner-only; returns the
/// paths whose mode was wider.
pub fn narrow_tree(root: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut repaired = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(p) = stack.pop() {
        let meta = std::fs::symlink_metadata(&p)?;
        if meta.file_type().is_symlink() {
            continue;
        }
        let mode = if meta.is_dir() { DIR_MODE } else { FILE_MODE };
        if narrow(&p, mode)? {
            repaired.push(p.clone());
        }
        if meta.is_dir() {
            for entry in std::fs::read_dir(&p)? {
                stack.push(entry?.path());
            }
        }
    }
    Ok(repaired)
}

/// Clear group and other bits; true when there were any.
fn narrow(path: &Path, mode: u32) -> std::io::Result<bool> {
    let current = std::fs::metadata(path)?.permissions().mode() & 0o777;
    if current & 0o077 == 0 {
        return Ok(false);
    }
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))?;
    Ok(true)
}
