//! Which file system a lock file is on, and whether its locks reach other
//! machines: from `/proc/self/mountinfo` on Linux (type, mount point, options).

use std::path::{Path, PathBuf};

/// The mount a path is on.
#[derive(Debug, PartialEq, Eq)]
pub struct FileSystem {
    /// The type as the kernel names it: `ext4`, `tmpfs`, `nfs4`, `fuse.sshfs`.
    pub kind: String,
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// The mount's and the file system's options, comma-separated.
    pub options: String,
}

impl FileSystem {
    /// The file system that `path` (a lock file, or where one would be) is on,
    /// if this platform can say.
    pub fn of(path: &Path) -> Option<FileSystem> {
        // The directory's real path: a missing file is on its directory's
        // file system, and mountinfo names real paths.
        let real = path.canonicalize().ok().or_else(|| {
            let dir = match path.parent() {
                Some(dir) if !dir.as_os_str().is_empty() => dir,
                _ => Path::new("."),
            };
            dir.canonicalize().ok()
        })?;
        let table = std::fs::read("/proc/self/mountinfo").ok()?;
        mount_of(&real, &table)
    }

    /// Why the lock may not reach other machines, when it is known not to
    /// (or when only the file system itself could make it).
    pub fn warning(&self) -> Option<String> {
        let has = |option: &str| self.options.split(',').any(|o| o == option);
        let kind = self.kind.as_str();
        if kind == "fuse" || kind == "fuseblk" || kind.starts_with("fuse.") {
            return Some(format!(
                "a FUSE file system ({kind}): its locks are this machine's own unless the \
                 file system implements locking (sshfs and most others do not)"
            ));
        }
        if kind == "nfs" || kind == "nfs4" {
            for option in ["local_lock=flock", "local_lock=all", "nolock"] {
                if has(option) {
                    return Some(format!(
                        "NFS mounted with {option}: its locks are this client's own and \
                         do not reach other machines"
                    ));
                }
            }
        }
        if (kind == "cifs" || kind == "smb3") && has("nobrl") {
            return Some(format!(
                "{kind} mounted with nobrl: its locks are not sent to the server and do not \
                 reach other machines"
            ));
        }
        None
    }
}

/// The mount in `table` (mountinfo's text) whose mount point is the longest
/// prefix of `real`; of several at one point, the last (the one on top).
fn mount_of(real: &Path, table: &[u8]) -> Option<FileSystem> {
    let mut best: Option<FileSystem> = None;
    for line in table.split(|&b| b == b'\n') {
        let Some(mount) = parse_line(line) else {
            continue;
        };
        let longer = best.as_ref().map_or(0, |b| b.mount_point.as_os_str().len())
            <= mount.mount_point.as_os_str().len();
        if real.starts_with(&mount.mount_point) && longer {
            best = Some(mount);
        }
    }
    best
}

/// One line of mountinfo: `36 35 98:0 /root /mnt rw,noatime master:1 - ext4
/// /dev/sda1 rw,errors=continue`.
fn parse_line(line: &[u8]) -> Option<FileSystem> {
    use std::os::unix::ffi::OsStringExt;
    let line = std::str::from_utf8(line).ok()?;
    let (mount, fs) = line.split_once(" - ")?;
    let mut mount = mount.split(' ');
    let mount_point = mount.nth(4)?;
    let mount_options = mount.next()?;
    let mut fs = fs.split(' ');
    let kind = fs.next()?;
    let _source = fs.next()?;
    let fs_options = fs.next().unwrap_or("");
    Some(FileSystem {
        kind: kind.to_owned(),
        mount_point: PathBuf::from(std::ffi::OsString::from_vec(unescape(mount_point))),
        options: format!("{mount_options},{fs_options}"),
    })
}

/// Undoes mountinfo's octal escapes (`\040` for a space).
fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let octal = bytes.get(i + 1..i + 4).and_then(|digits| {
            let digits = std::str::from_utf8(digits).ok()?;
            u8::from_str_radix(digits, 8).ok()
        });
        match (bytes[i], octal) {
            (b'\\', Some(byte)) => {
                out.push(byte);
                i += 4;
            }
            (byte, _) => {
                out.push(byte);
                i += 1;
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const TABLE: &[u8] = b"\
22 1 8:1 / / rw,relatime - ext4 /dev/sda1 rw
30 22 0:26 / /mnt rw - tmpfs tmpfs rw,size=4k
31 30 0:27 / /mnt/a\\040b rw - fuse.sshfs host:/x rw,user_id=0
32 22 0:28 / /nfs rw - nfs4 srv:/e rw,vers=4.2,local_lock=flock
33 22 0:29 / /nfs rw - nfs4 srv:/e rw,vers=4.2,local_lock=none
34 22 0:30 / /smb rw - cifs //srv/s rw,nobrl
";

    fn at(path: &str) -> FileSystem {
        mount_of(Path::new(path), TABLE).unwrap()
    }

    #[test]
    fn the_longest_mount_point_and_the_top_mount_win() {
        assert_eq!(at("/etc/x.lock").kind, "ext4");
        assert_eq!(at("/mnt/x.lock").kind, "tmpfs");
        assert_eq!(at("/mntx/x.lock").kind, "ext4");
        assert_eq!(at("/mnt/a b/x.lock").kind, "fuse.sshfs");
        assert_eq!(at("/nfs/x.lock").options, "rw,rw,vers=4.2,local_lock=none");
    }

    #[test]
    fn warnings_name_the_option_that_keeps_locks_local() {
        assert_eq!(at("/etc/x.lock").warning(), None);
        assert_eq!(at("/mnt/x.lock").warning(), None);
        assert!(at("/mnt/a b/x").warning().unwrap().contains("FUSE"));
        assert_eq!(at("/nfs/x").warning(), None);
        let nfs = FileSystem {
            kind: "nfs4".into(),
            mount_point: "/nfs".into(),
            options: "rw,vers=4.2,local_lock=flock".into(),
        };
        assert!(nfs.warning().unwrap().contains("local_lock=flock"));
        assert!(at("/smb/x").warning().unwrap().contains("nobrl"));
    }
}
