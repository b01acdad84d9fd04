//! The files that hand a `command` task the results of its dependencies: one directory per
//! run, readable by its owner only, removed when the run ends.

use std::fs::{DirBuilder, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use serde_json::Value;

/// A run's private directory (mode 0700) under the system's temporary directory, removed
/// with everything in it when the last clone is dropped.
#[derive(Clone)]
pub(crate) struct InputsRoot {
    dir: Arc<OnceLock<tempfile::TempDir>>,
}

impl InputsRoot {
    /// A root whose directory is created when it is first written to: a run with no
    /// command that reads dependencies' results needs none, and runs where none can be
    /// made (a temporary directory that is not there, or not writable).
    pub(crate) fn when_needed() -> Self {
        Self {
            dir: Arc::new(OnceLock::new()),
        }
    }

    /// Creates the directory now.
    pub(crate) fn create() -> io::Result<Self> {
        let root = Self::when_needed();
        root.path()?;
        Ok(root)
    }

    /// The directory, if it was created.
    pub(crate) fn created(&self) -> Option<&Path> {
        self.dir.get().map(tempfile::TempDir::path)
    }

    /// The directory, created if it is not there yet.
    pub(crate) fn path(&self) -> io::Result<&Path> {
        if let Some(dir) = self.dir.get() {
            return Ok(dir.path());
        }
        let made = tempfile::Builder::new()
            .prefix("orch-run-")
            .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .tempdir()
            .map_err(|e| {
                let problem = format!(
                    "cannot create a private temporary directory in {}: {e}",
                    std::env::temp_dir().display()
                );
                io::Error::new(e.kind(), problem)
            })?;
        // Of two attempts that made one at once, the other's is removed as it is dropped.
        let _ = self.dir.set(made);
        self.path()
    }

    /// Writes each dependency's result as `<dependency id>.json` (mode 0600) in the
    /// directory of `key` (mode 0700; the key names one delivery of an attempt), and returns that
    /// directory. Ids are written
    /// with `%XX` escapes for anything but letters, digits, `-`, `_` and `.` (and a
    /// leading `.`), so every id is one plain file name. A map instance's element (as
    /// JSON) goes in [`ITEM_FILE`] beside them, a name no dependency's file has.
    pub(crate) fn write(
        &self,
        key: &str,
        inputs: &[(String, &Value)],
        item: Option<&str>,
    ) -> io::Result<PathBuf> {
        let root = self.path()?;
        let dir = root.join(file_name(key));
        let make_dir = || (DirBuilder::new().mode(0o700).create(&dir)).map_err(at(&dir));
        match make_dir() {
            // Removed under a long-lived process (`orch worker`) by a cleaner of old
            // temporary files: made again.
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                make_private_again(root)?;
                make_dir()?;
            }
            Err(e) if e.kind() != io::ErrorKind::AlreadyExists => return Err(e),
            _ => {}
        }
        let written = (|| {
            for (id, value) in inputs {
                let path = dir.join(format!("{}.json", file_name(id)));
                // Streamed: a result of hundreds of megabytes is not copied into a text.
                write_private(&path, |out| Ok(serde_json::to_writer(out, value)?))?;
            }
            match item {
                Some(item) => {
                    write_private(&dir.join(ITEM_FILE), |out| out.write_all(item.as_bytes()))
                }
                None => Ok(()),
            }
        })();
        // A write that failed (a full disk, say) leaves none of the attempt's files: the
        // attempt does not run, and nothing else would remove them before the run ends.
        if let Err(error) = written {
            let _ = std::fs::remove_dir_all(&dir);
            return Err(error);
        }
        Ok(dir)
    }
}

/// Makes the removed directory `root` again (mode 0700). Another attempt of this process
/// may have made it meanwhile; a directory someone else made at that name, or one others
/// may open, is refused.
fn make_private_again(root: &Path) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    match DirBuilder::new().mode(0o700).create(root).map_err(at(root)) {
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            let found = std::fs::symlink_metadata(root).map_err(at(root))?;
            let ours = found.is_dir()
                && found.uid() == nix::unistd::geteuid().as_raw()
                && found.permissions().mode() & 0o077 == 0;
            if ours {
                Ok(())
            } else {
                Err(io::Error::new(
                    e.kind(),
                    format!(
                        "the private temporary directory {} was removed, and something \
                         else took its name",
                        root.display()
                    ),
                ))
            }
        }
        made => made,
    }
}

/// Writes what `write` writes and a newline to the file at `path`, readable by its owner
/// only; an error names the file.
fn write_private(
    path: &Path,
    write: impl FnOnce(&mut io::BufWriter<std::fs::File>) -> io::Result<()>,
) -> io::Result<()> {
    let written = (|| {
        let file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(path)?;
        let mut out = io::BufWriter::new(file);
        write(&mut out)?;
        out.write_all(b"\n")?;
        out.flush()
    })();
    written.map_err(at(path))
}

/// Makes an error about `path` name it.
fn at(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The longest file name [`file_name`] gives, leaving room for `.json` within the 255
/// bytes file systems allow.
const LONGEST_NAME: usize = 200;

/// The file of a map instance's element in its inputs directory.
pub(crate) const ITEM_FILE: &str = ".item.json";

/// `id` as one file name: letters, digits, `-`, `_` and `.` kept (a leading `.` escaped),
/// every other byte written `%XX`. A name longer than 200 bytes keeps at most its first
/// 183 (never cutting an escape) followed by `~` and the 16 hex digits of the 64-bit FNV-1a
/// hash of the id's bytes, so that long ids stay distinct.
pub(crate) fn file_name(id: &str) -> String {
    let name = escaped(id);
    if name.len() <= LONGEST_NAME {
        return name;
    }
    let mut cut = LONGEST_NAME - 17;
    // An escape is `%XX`: back off to its `%` if the cut falls inside one.
    if let Some(percent) = name[cut.saturating_sub(2)..cut].rfind('%') {
        cut = cut - 2 + percent;
    }
    let hash = id.bytes().fold(0xcbf2_9ce4_8422_2325_u64, |hash, byte| {
        (hash ^ u64::from(byte)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{}~{hash:016x}", &name[..cut])
}

fn escaped(id: &str) -> String {
    let mut name = String::with_capacity(id.len());
    for (i, byte) in id.bytes().enumerate() {
        let plain =
            byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_' || (byte == b'.' && i > 0);
        if plain {
            name.push(byte as char);
        } else {
            name.push_str(&format!("%{byte:02X}"));
        }
    }
    if name.is_empty() {
        name.push('%');
    }
    name
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt;

    use serde_json::json;

    use super::*;

    #[test]
    fn inputs_written_before_a_write_fails_are_removed() {
        let root = InputsRoot::create().expect("temp dir");
        let value = json!(1);
        // The second file cannot be written: a directory has its name.
        let dir = root.path().expect("made").join(file_name("run/1/t"));
        std::fs::create_dir_all(dir.join("b.json")).expect("in the way");
        let inputs = [("a".into(), &value), ("b".into(), &value)];
        let error = (root.write("run/1/t", &inputs, None)).expect_err("b.json is a directory");
        assert!(!dir.exists(), "the attempt's files were left behind");
        let named = dir.join("b.json").display().to_string();
        assert!(error.to_string().starts_with(&named), "{error}");
    }

    #[test]
    fn inputs_are_private_files_removed_with_the_run() {
        let root = InputsRoot::create().expect("temp dir");
        let value = json!({"rows": 3});
        let dir = root
            .write("load/v2", &[("fetch".into(), &value)], None)
            .expect("written");
        let mode = |p: &Path| std::fs::metadata(p).expect("exists").permissions().mode() & 0o777;
        assert_eq!(mode(root.path().expect("made")), 0o700);
        assert_eq!(mode(&dir), 0o700);
        let file = dir.join("fetch.json");
        assert_eq!(mode(&file), 0o600);
        let read: Value =
            serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("json");
        assert_eq!(read, value);
        assert!(dir.ends_with("load%2Fv2"));
        let path = root.path().expect("made").to_owned();
        drop(root);
        assert!(!path.exists());
    }

    #[test]
    fn a_directory_removed_by_a_cleaner_of_temporary_files_is_made_again() {
        let root = InputsRoot::create().expect("temp dir");
        let path = root.path().expect("made").to_owned();
        std::fs::remove_dir_all(&path).expect("removed");
        let value = json!(1);
        let dir = root
            .write("t", &[("a".into(), &value)], None)
            .expect("written");
        assert!(dir.join("a.json").is_file());
        let mode = std::fs::metadata(&path)
            .expect("made again")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o700);
        drop(root);
        assert!(!path.exists());
    }

    #[test]
    fn every_id_is_one_plain_file_name() {
        assert_eq!(file_name("a.b-c_d"), "a.b-c_d");
        assert_eq!(file_name(".."), "%2E.");
        assert_eq!(file_name("x y/é"), "x%20y%2F%C3%A9");
        assert_eq!(file_name(""), "%");
    }

    #[test]
    fn long_ids_are_cut_with_a_hash_that_keeps_them_apart() {
        // Every byte of these ids is escaped: a cut anywhere but before a `%` would split
        // an escape.
        let (a, b) = ("é".repeat(100), format!("{}è", "é".repeat(99)));
        let (name_a, name_b) = (file_name(&a), file_name(&b));
        assert_ne!(name_a, name_b);
        for (id, name) in [(&a, &name_a), (&b, &name_b)] {
            assert!(name.len() <= 200, "{name}");
            let (kept, hash) = name.rsplit_once('~').expect("a hash");
            assert!(hash.len() == 16 && hash.bytes().all(|c| c.is_ascii_hexdigit()));
            let full = escaped(id);
            assert!(full.starts_with(kept) && full[kept.len()..].starts_with('%'));
        }
        assert_eq!(file_name(&"a".repeat(200)), "a".repeat(200));
        assert_eq!(file_name(&"a".repeat(201)).len(), 200);
        let root = InputsRoot::create().expect("temp dir");
        let value = json!(1);
        root.write(&a, &[(b.clone(), &value)], None)
            .expect("a long id is one file name");
    }
}
