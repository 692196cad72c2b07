//! How to take a lock: the builder, in the style of `std::fs::OpenOptions`.

use std::path::Path;

use crate::error::LockError;
use crate::lock::LockFile;
use crate::template::{Template, TemplateError, DEFAULT_TEMPLATE};

/// Options for taking a lock, for when [`LockFile::lock`]'s defaults do not fit.
///
/// ```
/// use pidlockfile::{Holder, LockOptions};
///
/// let dir = tempfile::tempdir()?;
/// let path = dir.path().join("app.lock");
/// let lock = LockOptions::new()
///     .content_template("{pid}/{hostname} (nightly backup)")
///     .lock(&path)?;
///
/// let holder = Holder::read(&path)?.unwrap();
/// assert_eq!(holder.pid(), Some(std::process::id()));
/// assert!(holder.content().ends_with(" (nightly backup)"));
/// lock.close()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone, Debug)]
pub struct LockOptions {
    template: Result<Template, TemplateError>,
}

impl LockOptions {
    /// The defaults: the content template `{pid};{hostname}`.
    pub fn new() -> LockOptions {
        LockOptions {
            template: Template::parse(DEFAULT_TEMPLATE),
        }
    }

    /// Sets what the holder writes into the lock file, as zc.lockfile's
    /// `content_template` does: `{pid}` and `{hostname}` are replaced by the
    /// holder's, `{{` and `}}` stand for braces. The file then holds a space,
    /// the rendered template and a newline.
    ///
    /// A template that cannot be used (an unknown placeholder such as `{host}`,
    /// an unbalanced brace, a line break) makes [`lock`](LockOptions::lock)
    /// return [`LockError::Template`] before the file is touched.
    ///
    /// A template without `{pid}` leaves the holder's pid out of the file, so a
    /// refusal cannot name the holder's pid.
    pub fn content_template(&mut self, template: &str) -> &mut LockOptions {
        self.template = Template::parse(template);
        self
    }

    /// Opens or creates the lock file at `path`, takes its exclusive lock
    /// without blocking, and writes the holder's content into it.
    ///
    /// # Errors
    /// - [`LockError::Locked`] when another lock holds the file, with the holder
    ///   read from it; one record is logged at `ERROR` level (target
    ///   `pidlockfile`): `Error locking file <path>; pid=<pid or UNKNOWN>`.
    ///   The file is left as it was.
    /// - [`LockError::Template`] when the content template cannot be used.
    /// - [`LockError::Io`] when the file cannot be opened, locked or written:
    ///   for example its directory is missing, it is a directory, a symbolic
    ///   link, a FIFO or a device, permission is denied, or the disk is full.
    ///   No lock is left held.
    pub fn lock(&self, path: impl AsRef<Path>) -> Result<LockFile, LockError> {
        let path = path.as_ref();
        match &self.template {
            Ok(template) => LockFile::acquire(path, template),
            Err(e) => Err(LockError::Template {
                path: path.to_owned(),
                source: e.clone(),
            }),
        }
    }
}

impl Default for LockOptions {
    fn default() -> LockOptions {
        LockOptions::new()
    }
}
