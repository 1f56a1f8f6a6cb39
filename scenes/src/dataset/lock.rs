//! One writer per dataset.
//!
//! Two processes appending to one dataset would race: each rewrites the same data and
//! metadata files, and a resume's clean-up of "uncommitted" files deletes the other's episode
//! in progress. A [`WriterLock`] is an advisory lock (`flock`, through std's
//! [`File::try_lock`]) on `meta/dreamyard.lock`, held for as long as a
//! [`DatasetWriter`](super::DatasetWriter) lives. The operating system drops it when the
//! process ends, however it ends, so a crash or `kill -9` never leaves a dataset stuck. The
//! file holds a line naming the holder (process id, command, host, start time), so a refused
//! writer can say who is writing; the line is cleared when the lock is released.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read as _, Seek as _, Write as _};
use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use super::DatasetError;

/// Where the lock lives, relative to the dataset's root (beside `meta/dreamyard.json`).
pub const LOCK_PATH: &str = "meta/dreamyard.lock";

/// Exclusive right to write one dataset, released on drop (or when the process dies).
#[derive(Debug)]
pub struct WriterLock {
    file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock of the dataset in `root` (creating `meta/` and the lock file if needed),
    /// or fails at once with [`DatasetError::Locked`] naming the writer that holds it.
    pub fn acquire(root: &Path) -> Result<Self, DatasetError> {
        let path = root.join(LOCK_PATH);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).map_err(|e| DatasetError::io(dir, e))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| DatasetError::io(&path, e))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                return Err(DatasetError::Locked {
                    dir: root.to_owned(),
                    holder: holder_of(&mut file),
                });
            }
            // A file system without locks (some network mounts): nothing to hold.
            Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => {}
            Err(TryLockError::Error(e)) => return Err(DatasetError::io(&path, e)),
        }
        let line = format!("{}\n", describe_this_process());
        file.set_len(0)
            .and_then(|()| file.rewind())
            .and_then(|()| file.write_all(line.as_bytes()))
            .map_err(|e| DatasetError::io(&path, e))?;
        Ok(Self { file, path })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for WriterLock {
    fn drop(&mut self) {
        // Best effort: the lock itself goes with the file handle whatever happens here.
        let _ = self.file.set_len(0);
        let _ = self.file.unlock();
    }
}

/// Who is writing the dataset in `root`, if anyone: the holder's line, without taking the
/// lock for longer than the check.
pub fn writer_of(root: &Path) -> Result<Option<String>, DatasetError> {
    let path = root.join(LOCK_PATH);
    let mut file = match OpenOptions::new().read(true).write(true).open(&path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(DatasetError::io(&path, e)),
    };
    match file.try_lock() {
        Ok(()) => {
            file.unlock().map_err(|e| DatasetError::io(&path, e))?;
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(Some(holder_of(&mut file))),
        Err(TryLockError::Error(e)) if e.kind() == std::io::ErrorKind::Unsupported => Ok(None),
        Err(TryLockError::Error(e)) => Err(DatasetError::io(&path, e)),
    }
}

/// The holder's line, or words for a holder that has not written it yet.
fn holder_of(file: &mut File) -> String {
    let mut text = String::new();
    // A short read: the line is a few hundred bytes at most.
    let _ = std::io::Read::by_ref(file)
        .take(4096)
        .read_to_string(&mut text);
    let line = text.trim();
    if line.is_empty() {
        "another process (it has not said which yet)".to_owned()
    } else {
        line.to_owned()
    }
}

/// `pid 4242 (dreamyard record --out d), host lab-3, since 2026-12-06 23:59:01 UTC`.
fn describe_this_process() -> String {
    let mut command: String = std::env::args().collect::<Vec<_>>().join(" ");
    if command.chars().count() > 200 {
        command = command.chars().take(200).collect::<String>() + "...";
    }
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty());
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or_else(|_| "an unknown time".to_owned(), |d| utc(d.as_secs()));
    let host = host.map_or(String::new(), |h| format!(", host {h}"));
    format!(
        "pid {} ({command}){host}, since {since}",
        std::process::id()
    )
}

/// `YYYY-MM-DD hh:mm:ss UTC` for seconds since the Unix epoch (the proleptic Gregorian
/// calendar, as in Howard Hinnant's `civil_from_days`).
fn utc(secs: u64) -> String {
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(utc(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(utc(1_796_601_599), "2026-12-06 23:59:59 UTC");
    }

    #[test]
    fn a_second_lock_is_refused_naming_the_first_and_released_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let first = WriterLock::acquire(dir.path()).unwrap();
        let holder = writer_of(dir.path()).unwrap().expect("held");
        assert!(
            holder.contains(&format!("pid {}", std::process::id())),
            "{holder}"
        );
        let err = WriterLock::acquire(dir.path()).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, DatasetError::Locked { .. }), "{msg}");
        assert!(
            msg.contains(&format!("pid {}", std::process::id())),
            "{msg}"
        );
        assert!(msg.contains("since 20"), "{msg}");
        drop(first);
        assert_eq!(writer_of(dir.path()).unwrap(), None);
        let again = WriterLock::acquire(dir.path()).unwrap();
        assert!(again.path().ends_with(LOCK_PATH));
    }
}
