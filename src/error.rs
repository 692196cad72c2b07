//! Why a lock could not be taken or released.

use std::error::Error;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::holder::{Held, Holder};
use crate::template::TemplateError;

/// Why a lock file could not be locked or released. Every variant names the
/// lock file's path.
///
/// `Display` gives the whole story on one line, for example
/// `cannot lock "data/LOCK": held by pid 4242 on host db1` or
/// `cannot lock "data/LOCK": Permission denied (os error 13)`; the cause is
/// part of that line, so [`source`](Error::source) returns only the cause's
/// own source, as `tempfile`'s `PathError` does.
///
/// ```
/// use pidlockfile::{LockError, LockFile};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("LOCK");
/// let _held = LockFile::lock(&path)?;
///
/// match LockFile::lock(&path) {
///     Err(LockError::Locked { holder: Some(holder), .. }) => {
///         assert_eq!(holder.pid(), Some(std::process::id()));
///     }
///     other => panic!("expected a refusal, got {other:?}"),
/// }
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Debug)]
#[non_exhaustive]
pub enum LockError {
    /// Another lock holds the file: another process, or another
    /// [`LockFile`](crate::LockFile) in this one. `holder` is what the file
    /// says about it, `None` when it says nothing.
    Locked {
        /// The lock file.
        path: PathBuf,
        /// What the lock file says about its holder.
        holder: Option<Holder>,
    },
    /// Another lock still held the file when the time given to
    /// [`LockOptions::wait`](crate::LockOptions::wait) was up. The waiter
    /// holds nothing and has closed its descriptor.
    TimedOut {
        /// The lock file.
        path: PathBuf,
        /// How long it waited.
        waited: Duration,
        /// What the lock file said about its holder at the end.
        holder: Option<Holder>,
    },
    /// The lock file could not be opened, locked, written or unlocked.
    /// Nothing was left locked, and the file's content was not damaged.
    Io {
        /// The lock file.
        path: PathBuf,
        /// The cause.
        source: io::Error,
    },
    /// The content template cannot be used; the file was not touched.
    Template {
        /// The lock file.
        path: PathBuf,
        /// What is wrong with the template.
        source: TemplateError,
    },
}

impl LockError {
    /// Attaches the lock file's path to an I/O error: the one place that does.
    pub(crate) fn io(path: &Path, source: io::Error) -> LockError {
        LockError::Io {
            path: path.to_owned(),
            source,
        }
    }

    /// The lock file this error is about.
    pub fn path(&self) -> &Path {
        match self {
            LockError::Locked { path, .. }
            | LockError::TimedOut { path, .. }
            | LockError::Io { path, .. }
            | LockError::Template { path, .. } => path,
        }
    }

    /// Who holds the lock, when it is held elsewhere and the file or the
    /// kernel says who.
    pub fn holder(&self) -> Option<&Holder> {
        match self {
            LockError::Locked { holder, .. } | LockError::TimedOut { holder, .. } => {
                holder.as_ref()
            }
            _ => None,
        }
    }
}

impl fmt::Display for LockError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot lock {:?}: ", self.path())?;
        match self {
            LockError::Locked { holder, .. } => write!(f, "held{}", Held(holder.as_ref())),
            LockError::TimedOut { waited, holder, .. } => write!(
                f,
                "timed out after {:.3}s, held{}",
                waited.as_secs_f64(),
                Held(holder.as_ref())
            ),
            LockError::Io { source, .. } => write!(f, "{source}"),
            LockError::Template { source, .. } => write!(f, "{source}"),
        }
    }
}

impl Error for LockError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        match self {
            LockError::Io { source, .. } => source.source(),
            _ => None,
        }
    }
}

/// For callers that return `io::Result`: a refusal becomes
/// [`io::ErrorKind::WouldBlock`], a timeout [`io::ErrorKind::TimedOut`], a bad template
/// [`io::ErrorKind::InvalidInput`], and an I/O error keeps its kind; the
/// message is this error's `Display`.
impl From<LockError> for io::Error {
    fn from(error: LockError) -> io::Error {
        let kind = match &error {
            LockError::Locked { .. } => io::ErrorKind::WouldBlock,
            LockError::TimedOut { .. } => io::ErrorKind::TimedOut,
            LockError::Io { source, .. } => source.kind(),
            LockError::Template { .. } => io::ErrorKind::InvalidInput,
        };
        io::Error::new(kind, error.to_string())
    }
}
