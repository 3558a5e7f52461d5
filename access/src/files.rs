//! Files of access-control state (keys, the audit head) and of other private state (alert
//! state, silences, the user-hash key): written whole, atomically and durably, readable by their
//! owner only.

use std::{fs, io::Write, path::Path};

/// Writes a file readable by its owner only (0600), atomically: temp file, fsync, rename.
pub fn write_private_file(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    {
        let mut options = fs::OpenOptions::new();
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut f = options.open(&tmp)?;
        f.write_all(contents)?;
        f.sync_all()?;
    }
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent()
        && let Ok(d) = fs::File::open(dir)
    {
        d.sync_all()?;
    }
    Ok(())
}
