//! Who holds a file store open, for [`crate::Error::StoreInUse`]: on
//! Linux, the process with the file among its open files (redb's locks
//! are open-file-description locks, which `/proc/locks` shows without a
//! pid).

use std::path::Path;

/// The pid of a process that has `path` open, where the system says;
/// another process before this one.
pub(super) fn lock_holder(path: &Path) -> Option<u32> {
    #[cfg(target_os = "linux")]
    {
        let wanted = std::fs::canonicalize(path).ok()?;
        let mut holders: Vec<u32> = std::fs::read_dir("/proc")
            .ok()?
            .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| has_open(*pid, &wanted))
            .collect();
        // Another process first: this one may hold it too (a second store).
        holders.sort_by_key(|pid| *pid == std::process::id());
        holders.first().copied()
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = path;
        None
    }
}

/// True when process `pid` has `file` open (as far as this process may look).
#[cfg(target_os = "linux")]
fn has_open(pid: u32, file: &Path) -> bool {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fd")) else {
        return false;
    };
    fds.filter_map(|fd| std::fs::read_link(fd.ok()?.path()).ok())
        .any(|target| target == file)
}
