//! An output folder written atomically.
//!
//! Files are written into a hidden temporary sibling of the destination and
//! the folder is renamed into place only when complete. If anything fails
//! (or the process dies), nothing appears at the destination and an earlier
//! run there is untouched. Folders are created 0700 and files 0600: lists
//! name patients and are for the owner only.

use std::fs::{self, File, OpenOptions};
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[derive(Debug, thiserror::Error)]
#[error("{path}: {source}")]
pub struct RunDirError {
    pub path: PathBuf,
    #[source]
    pub source: std::io::Error,
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> RunDirError + '_ {
    move |source| RunDirError {
        path: path.to_path_buf(),
        source,
    }
}

/// Paths to remove if the process is stopped by a signal (the temporary
/// folder of a run being written, the output root's lock): see
/// [`remove_on_signal`].
static IN_PROGRESS: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn track(path: &Path) {
    if let Ok(mut v) = IN_PROGRESS.lock() {
        v.push(path.to_path_buf());
    }
}

fn untrack(path: &Path) {
    if let Ok(mut v) = IN_PROGRESS.lock() {
        v.retain(|p| p != path);
    }
}

/// Removes every temporary folder and lock this process holds. Called when
/// SIGINT or SIGTERM stops a run: the destination is untouched, the
/// earlier run stays, and the next run finds no lock.
pub fn remove_on_signal() {
    let paths = IN_PROGRESS.lock().map(|v| v.clone()).unwrap_or_default();
    for p in paths.iter().rev() {
        if p.is_dir() {
            let _ = fs::remove_dir_all(p);
        } else {
            let _ = fs::remove_file(p);
        }
    }
}

/// A run folder being written.
#[derive(Debug)]
pub struct RunDir {
    dest: PathBuf,
    tmp: PathBuf,
    committed: bool,
}

fn private_dir(path: &Path) -> Result<(), RunDirError> {
    let mut b = fs::DirBuilder::new();
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(path).map_err(io(path))
}

impl RunDir {
    /// Starts a run folder that will become `dest`.
    pub fn create(dest: &Path) -> Result<RunDir, RunDirError> {
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        if !parent.is_dir() {
            fs::create_dir_all(&parent).map_err(io(&parent))?;
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_else(|| "run".into());
        let tmp = parent.join(format!(".{name}.partial-{}", std::process::id()));
        if tmp.exists() {
            fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        private_dir(&tmp)?;
        track(&tmp);
        Ok(RunDir {
            dest: dest.to_path_buf(),
            tmp,
            committed: false,
        })
    }

    /// Creates a sub-folder (0700) of the run.
    pub fn subdir(&self, rel: &str) -> Result<PathBuf, RunDirError> {
        let p = self.tmp.join(rel);
        private_dir(&p)?;
        Ok(p)
    }

    /// Opens a new file (0600) in the run for writing.
    pub fn file(&self, rel: &str) -> Result<BufWriter<File>, RunDirError> {
        let p = self.tmp.join(rel);
        let mut o = OpenOptions::new();
        o.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            o.mode(0o600);
        }
        Ok(BufWriter::new(o.open(&p).map_err(io(&p))?))
    }

    pub fn write(&self, rel: &str, bytes: &[u8]) -> Result<(), RunDirError> {
        let p = self.tmp.join(rel);
        let mut f = self.file(rel)?;
        f.write_all(bytes).map_err(io(&p))?;
        f.flush().map_err(io(&p))
    }

    pub fn path(&self) -> &Path {
        &self.tmp
    }

    /// Moves the finished run into place, replacing an earlier run there.
    pub fn commit(mut self) -> Result<PathBuf, RunDirError> {
        let old = self.tmp.with_file_name(format!(
            "{}.previous",
            self.tmp
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default()
        ));
        let had_old = self.dest.exists();
        if had_old {
            fs::rename(&self.dest, &old).map_err(io(&self.dest))?;
        }
        if let Err(e) = fs::rename(&self.tmp, &self.dest) {
            if had_old {
                let _ = fs::rename(&old, &self.dest);
            }
            return Err(io(&self.dest)(e));
        }
        self.committed = true;
        untrack(&self.tmp);
        if had_old {
            let _ = fs::remove_dir_all(&old);
        }
        Ok(self.dest.clone())
    }
}

/// The output root's lock: one run writes to a root at a time. A second
/// run fails at once with a message naming the holder; a lock left by a
/// run that no longer exists (killed) is taken over, and the temporary
/// folders such a run left behind are removed.
#[derive(Debug)]
pub struct OutputLock {
    path: PathBuf,
}

/// What took the lock, as written in it.
fn holder_text(run: &str) -> String {
    format!(
        "pid {}, run {run}, started {}",
        std::process::id(),
        chrono::Local::now().format("%Y-%m-%d %H:%M:%S")
    )
}

fn pid_of(holder: &str) -> Option<u32> {
    holder
        .strip_prefix("pid ")?
        .split(',')
        .next()?
        .trim()
        .parse()
        .ok()
}

/// Whether a process with this id is running (Linux: /proc; elsewhere
/// assume it is, so a lock is never taken over wrongly).
fn alive(pid: u32) -> bool {
    if cfg!(target_os = "linux") {
        Path::new(&format!("/proc/{pid}")).exists()
    } else {
        true
    }
}

impl OutputLock {
    /// Takes the lock of `root` for the run `run`. `Err(Some(holder))`
    /// when another live run holds it.
    pub fn acquire(root: &Path, run: &str) -> Result<OutputLock, Result<String, RunDirError>> {
        if !root.is_dir() {
            fs::create_dir_all(root).map_err(|e| Err(io(root)(e)))?;
        }
        let path = root.join(".strata.lock");
        // The holder is written to a file of this process first and then
        // linked in as the lock, so a lock is never seen without its holder
        // (a run killed between creating and writing it would otherwise
        // leave an empty lock that no later run could take over).
        let mine = root.join(format!(".strata.lock.{}", std::process::id()));
        {
            let mut o = OpenOptions::new();
            o.write(true).create(true).truncate(true);
            #[cfg(unix)]
            {
                use std::os::unix::fs::OpenOptionsExt;
                o.mode(0o600);
            }
            let mut f = o.open(&mine).map_err(|e| Err(io(&mine)(e)))?;
            writeln!(f, "{}", holder_text(run)).map_err(|e| Err(io(&mine)(e)))?;
        }
        for _ in 0..2 {
            match fs::hard_link(&mine, &path) {
                Ok(()) => {
                    let _ = fs::remove_file(&mine);
                    track(&path);
                    let lock = OutputLock { path };
                    lock.remove_stale_partials(root);
                    return Ok(lock);
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
                    let holder = fs::read_to_string(&path).unwrap_or_default();
                    let holder = holder.trim().to_string();
                    match pid_of(&holder) {
                        Some(pid) if !alive(pid) => {
                            let _ = fs::remove_file(&path);
                        }
                        _ => {
                            let _ = fs::remove_file(&mine);
                            return Err(Ok(holder));
                        }
                    }
                }
                Err(e) => {
                    let _ = fs::remove_file(&mine);
                    return Err(Err(io(&path)(e)));
                }
            }
        }
        let _ = fs::remove_file(&mine);
        Err(Ok(fs::read_to_string(&path)
            .unwrap_or_default()
            .trim()
            .to_string()))
    }

    /// Temporary folders of runs that died (only this run may write here
    /// now, so every one is stale).
    fn remove_stale_partials(&self, root: &Path) {
        let Ok(entries) = fs::read_dir(root) else {
            return;
        };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') && name.contains(".partial-") {
                let _ = fs::remove_dir_all(e.path());
            }
            // A holder file of a run killed before it linked its lock.
            if let Some(pid) = name.strip_prefix(".strata.lock.") {
                if pid.parse().is_ok_and(|p| !alive(p)) {
                    let _ = fs::remove_file(e.path());
                }
            }
        }
    }
}

impl Drop for OutputLock {
    fn drop(&mut self) {
        let _ = fs::remove_file(&self.path);
        untrack(&self.path);
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.committed {
            let _ = fs::remove_dir_all(&self.tmp);
            untrack(&self.tmp);
        }
    }
}
